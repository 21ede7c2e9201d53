//! A client of a Kubernetes KMS plugin over its unix socket: gRPC (tonic)
//! with the messages of `k8s.io/kms` written as prost structs, so no
//! `protoc` is needed. Only the calls a re-encryption needs: the v2 API's
//! `Status` and `Decrypt` (k8s.io/kms apis/v2/api.proto) and the deprecated
//! v1beta1 API's `Version` and `Decrypt` (apis/v1beta1/api.proto).
//!
//! Calls are blocking: each runs on a small current-thread runtime owned by
//! the client, under the provider's timeout.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tonic::codegen::http::uri::PathAndQuery;
use tonic::transport::{Channel, Endpoint, Uri};
use zeroize::Zeroizing;

/// `v2.StatusRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct StatusRequest {}

/// `v2.StatusResponse`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct StatusResponse {
    /// `v2` (or `v2beta1` from older plugins).
    #[prost(string, tag = "1")]
    pub version: String,
    /// `ok` when healthy.
    #[prost(string, tag = "2")]
    pub healthz: String,
    /// The plugin's current key id.
    #[prost(string, tag = "3")]
    pub key_id: String,
}

/// `v2.DecryptRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct DecryptRequest {
    /// The encrypted DEK source of the value.
    #[prost(bytes = "vec", tag = "1")]
    pub ciphertext: Vec<u8>,
    /// A request id for the plugin's logs.
    #[prost(string, tag = "2")]
    pub uid: String,
    /// The key id the value names.
    #[prost(string, tag = "3")]
    pub key_id: String,
    /// The value's annotations.
    #[prost(btree_map = "string, bytes", tag = "4")]
    pub annotations: BTreeMap<String, Vec<u8>>,
}

/// `v2.DecryptResponse`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct DecryptResponse {
    /// The DEK or seed.
    #[prost(bytes = "vec", tag = "1")]
    pub plaintext: Vec<u8>,
}

/// `v1beta1.VersionRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct V1VersionRequest {
    /// `v1beta1`.
    #[prost(string, tag = "1")]
    pub version: String,
}

/// `v1beta1.VersionResponse`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct V1VersionResponse {
    /// `v1beta1`.
    #[prost(string, tag = "1")]
    pub version: String,
    /// The plugin's runtime name.
    #[prost(string, tag = "2")]
    pub runtime_name: String,
    /// The plugin's runtime version.
    #[prost(string, tag = "3")]
    pub runtime_version: String,
}

/// `v1beta1.DecryptRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct V1DecryptRequest {
    /// `v1beta1`.
    #[prost(string, tag = "1")]
    pub version: String,
    /// The encrypted DEK.
    #[prost(bytes = "vec", tag = "2")]
    pub cipher: Vec<u8>,
}

/// `v1beta1.DecryptResponse`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct V1DecryptResponse {
    /// The DEK.
    #[prost(bytes = "vec", tag = "1")]
    pub plain: Vec<u8>,
}

/// The API version string the v1beta1 client sends (apiserver envelope/grpc_service.go `kmsapiVersion`).
pub const V1_API_VERSION: &str = "v1beta1";

/// A connection to one plugin socket.
pub struct PluginClient {
    socket: PathBuf,
    timeout: Duration,
    rt: tokio::runtime::Runtime,
    channel: Channel,
}

impl std::fmt::Debug for PluginClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginClient").field("socket", &self.socket).field("timeout", &self.timeout).finish()
    }
}

impl PluginClient {
    /// Connects to the plugin listening on `socket`; every call gets `timeout`.
    pub fn connect(socket: &Path, timeout: Duration) -> Result<Self, String> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()
            .map_err(|e| format!("cannot start the gRPC runtime: {e}"))?;
        let path = socket.to_path_buf();
        let channel = rt.block_on(async {
            // The URI is required by the API and ignored: the connector dials the socket.
            let ep = Endpoint::from_static("http://kms-plugin.invalid").connect_timeout(timeout).timeout(timeout);
            let fut = ep.connect_with_connector(tower::service_fn(move |_: Uri| {
                let p = path.clone();
                async move {
                    let s = tokio::net::UnixStream::connect(p).await?;
                    Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(s))
                }
            }));
            match tokio::time::timeout(timeout, fut).await {
                Ok(Ok(ch)) => Ok(ch),
                Ok(Err(e)) => Err(format!("unreachable: {}", source_chain(&e))),
                Err(_) => Err(format!("no connection within {timeout:?}")),
            }
        })?;
        Ok(Self { socket: socket.to_path_buf(), timeout, rt, channel })
    }

    fn unary<Req, Resp>(&self, method: &'static str, req: Req) -> Result<Resp, String>
    where
        Req: prost::Message + Send + Sync + 'static,
        Resp: prost::Message + Default + Send + Sync + 'static,
    {
        let timeout = self.timeout;
        let mut grpc = tonic::client::Grpc::new(self.channel.clone());
        self.rt.block_on(async move {
            let call = async {
                grpc.ready().await.map_err(|e| format!("unreachable: {}", source_chain(&e)))?;
                let mut request = tonic::Request::new(req);
                request.set_timeout(timeout);
                let codec = tonic::codec::ProstCodec::<Req, Resp>::default();
                grpc.unary(request, PathAndQuery::from_static(method), codec)
                    .await
                    .map(tonic::Response::into_inner)
                    .map_err(|s| format!("{} failed: {} ({:?})", method, s.message(), s.code()))
            };
            match tokio::time::timeout(timeout, call).await {
                Ok(r) => r,
                Err(_) => Err(format!("{method}: no answer within {timeout:?}")),
            }
        })
    }

    /// v2 `Status`.
    pub fn status(&self) -> Result<StatusResponse, String> {
        self.unary("/v2.KeyManagementService/Status", StatusRequest {})
    }

    /// v2 `Decrypt`: the DEK or seed, wiped when dropped.
    pub fn decrypt(&self, req: DecryptRequest) -> Result<Zeroizing<Vec<u8>>, String> {
        let r: DecryptResponse = self.unary("/v2.KeyManagementService/Decrypt", req)?;
        Ok(Zeroizing::new(r.plaintext))
    }

    /// v1beta1 `Version`.
    pub fn v1_version(&self) -> Result<V1VersionResponse, String> {
        self.unary("/v1beta1.KeyManagementService/Version", V1VersionRequest { version: V1_API_VERSION.into() })
    }

    /// v1beta1 `Decrypt`: the DEK, wiped when dropped.
    pub fn v1_decrypt(&self, cipher: Vec<u8>) -> Result<Zeroizing<Vec<u8>>, String> {
        let r: V1DecryptResponse = self.unary(
            "/v1beta1.KeyManagementService/Decrypt",
            V1DecryptRequest { version: V1_API_VERSION.into(), cipher },
        )?;
        Ok(Zeroizing::new(r.plain))
    }
}

/// An error and its causes on one line (tonic's transport errors hide the I/O error in `source`).
fn source_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let t = c.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        cur = c.source();
    }
    s
}

/// A request id for the plugin's logs (upstream sends a UUID).
pub fn request_uid() -> String {
    let mut b = [0u8; 16];
    if getrandom::getrandom(&mut b).is_err() {
        return "etcdsnap".into();
    }
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!("etcdsnap-{hex}")
}
