// Command kmsplugin is a small KMS plugin for etcdsnap's tests: it serves the
// k8s.io/kms v2 API (through k8s.io/kms/pkg/service, the package real plugins
// are built on) and the deprecated v1beta1 API on one unix socket, wrapping
// data keys with AES-256-GCM under a key-encryption key read from a file.
// kube-apiserver and etcdsnap talk to the same socket.
//
//	kmsplugin --socket PATH --kek FILE [--key-id ID] [--log FILE]
//
// FILE holds 32 raw bytes. The key id defaults to "kek-" and the first 16 hex
// digits of the KEK's SHA-256. With --log, every call appends one line
// "<api> <method> <ok|error>" (v2 Status, v2 Decrypt, v1beta1 Decrypt, ...),
// so tests can count the calls a client made. Stops on SIGTERM/SIGINT.
package main

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"google.golang.org/grpc"
	kmsv1 "k8s.io/kms/apis/v1beta1"
	kmsv2 "k8s.io/kms/apis/v2"
	"k8s.io/kms/pkg/service"
)

type plugin struct {
	aead  cipher.AEAD
	keyID string
	logMu sync.Mutex
	log   *os.File
}

func (p *plugin) record(api, method string, err error) {
	if p.log == nil {
		return
	}
	res := "ok"
	if err != nil {
		res = "error"
	}
	p.logMu.Lock()
	defer p.logMu.Unlock()
	fmt.Fprintf(p.log, "%s %s %s\n", api, method, res)
	_ = p.log.Sync()
}

func (p *plugin) wrap(plain []byte) ([]byte, error) {
	nonce := make([]byte, p.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	return p.aead.Seal(nonce, nonce, plain, []byte(p.keyID)), nil
}

func (p *plugin) unwrap(ct []byte) ([]byte, error) {
	n := p.aead.NonceSize()
	if len(ct) < n {
		return nil, errors.New("ciphertext too short")
	}
	out, err := p.aead.Open(nil, ct[:n], ct[n:], []byte(p.keyID))
	if err != nil {
		return nil, errors.New("the key-encryption key does not unwrap this data key")
	}
	return out, nil
}

// The v2 API, served through k8s.io/kms/pkg/service.

func (p *plugin) Status(ctx context.Context) (*service.StatusResponse, error) {
	p.record("v2", "Status", nil)
	return &service.StatusResponse{Version: "v2", Healthz: "ok", KeyID: p.keyID}, nil
}

func (p *plugin) Encrypt(ctx context.Context, uid string, data []byte) (*service.EncryptResponse, error) {
	ct, err := p.wrap(data)
	p.record("v2", "Encrypt", err)
	if err != nil {
		return nil, err
	}
	return &service.EncryptResponse{Ciphertext: ct, KeyID: p.keyID,
		Annotations: map[string][]byte{"kek.kmsplugin.etcdsnap.test": []byte(p.keyID)}}, nil
}

func (p *plugin) Decrypt(ctx context.Context, uid string, req *service.DecryptRequest) ([]byte, error) {
	var err error
	if req.KeyID != p.keyID {
		err = fmt.Errorf("unknown key id %q", req.KeyID)
	}
	var out []byte
	if err == nil {
		out, err = p.unwrap(req.Ciphertext)
	}
	p.record("v2", "Decrypt", err)
	return out, err
}

// The v1beta1 API (KMS v1, deprecated upstream, still behind the KMSv1 gate).
type v1server struct {
	kmsv1.UnimplementedKeyManagementServiceServer
	p *plugin
}

func (s v1server) Version(ctx context.Context, _ *kmsv1.VersionRequest) (*kmsv1.VersionResponse, error) {
	s.p.record("v1beta1", "Version", nil)
	return &kmsv1.VersionResponse{Version: "v1beta1", RuntimeName: "kmsplugin", RuntimeVersion: "0.1.0"}, nil
}

func (s v1server) Encrypt(ctx context.Context, req *kmsv1.EncryptRequest) (*kmsv1.EncryptResponse, error) {
	ct, err := s.p.wrap(req.Plain)
	s.p.record("v1beta1", "Encrypt", err)
	if err != nil {
		return nil, err
	}
	return &kmsv1.EncryptResponse{Cipher: ct}, nil
}

func (s v1server) Decrypt(ctx context.Context, req *kmsv1.DecryptRequest) (*kmsv1.DecryptResponse, error) {
	out, err := s.p.unwrap(req.Cipher)
	s.p.record("v1beta1", "Decrypt", err)
	if err != nil {
		return nil, err
	}
	return &kmsv1.DecryptResponse{Plain: out}, nil
}

func main() {
	socket := flag.String("socket", "", "unix socket to listen on")
	kekFile := flag.String("kek", "", "file with the 32-byte key-encryption key")
	keyID := flag.String("key-id", "", "key id reported by Status (default: from the KEK's hash)")
	logFile := flag.String("log", "", "append one line per call to this file")
	flag.Parse()
	if *socket == "" || *kekFile == "" {
		fmt.Fprintln(os.Stderr, "usage: kmsplugin --socket PATH --kek FILE [--key-id ID] [--log FILE]")
		os.Exit(2)
	}
	kek, err := os.ReadFile(*kekFile)
	if err != nil || len(kek) != 32 {
		fmt.Fprintf(os.Stderr, "kmsplugin: %s: need 32 bytes (%v)\n", *kekFile, err)
		os.Exit(2)
	}
	block, err := aes.NewCipher(kek)
	if err != nil {
		fmt.Fprintln(os.Stderr, "kmsplugin:", err)
		os.Exit(2)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		fmt.Fprintln(os.Stderr, "kmsplugin:", err)
		os.Exit(2)
	}
	p := &plugin{aead: aead, keyID: *keyID}
	if p.keyID == "" {
		h := sha256.Sum256(kek)
		p.keyID = "kek-" + hex.EncodeToString(h[:8])
	}
	if *logFile != "" {
		if p.log, err = os.OpenFile(*logFile, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600); err != nil {
			fmt.Fprintln(os.Stderr, "kmsplugin:", err)
			os.Exit(2)
		}
	}
	_ = os.Remove(*socket)
	ln, err := net.Listen("unix", *socket)
	if err != nil {
		fmt.Fprintln(os.Stderr, "kmsplugin:", err)
		os.Exit(2)
	}
	gs := grpc.NewServer(grpc.ConnectionTimeout(10 * time.Second))
	kmsv2.RegisterKeyManagementServiceServer(gs, service.NewGRPCService(*socket, 10*time.Second, p))
	kmsv1.RegisterKeyManagementServiceServer(gs, v1server{p: p})
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-sig
		gs.Stop()
	}()
	fmt.Fprintf(os.Stderr, "kmsplugin: serving v2 and v1beta1 on %s, key id %s\n", *socket, p.keyID)
	if err := gs.Serve(ln); err != nil {
		fmt.Fprintln(os.Stderr, "kmsplugin:", err)
		os.Exit(1)
	}
	_ = os.Remove(*socket)
}
