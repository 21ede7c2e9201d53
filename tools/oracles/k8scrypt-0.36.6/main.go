// Command k8scrypt seals and opens values exactly as kube-apiserver does:
// it loads an EncryptionConfiguration with k8s.io/apiserver's own loader
// (encryptionconfig.LoadEncryptionConfig) and runs the transformer it builds
// for a resource, with the etcd key as authenticated data. etcdsnap's tests
// use it to produce and check encrypted values without a whole API server.
//
//	k8scrypt seal CONFIG RESOURCE ETCD_KEY < plaintext > stored
//	k8scrypt open CONFIG RESOURCE ETCD_KEY < stored > plaintext
//	k8scrypt put-many CONFIG RESOURCE ETCD_ENDPOINT KEY_PREFIX COUNT
//
// put-many seals COUNT Secret-like values under KEY_PREFIX<namespace>/<name>
// and writes them into a running etcd in batched transactions (benchmarks).
//
// KMS: KMS v1 providers are accepted (the KMSv1 feature gate is enabled, as
// an operator must); KMS v2 providers named in K8SCRYPT_KMSV2_NO_KDF (comma
// separated) write plain AES-GCM data keys instead of the HKDF seed, the
// other mode upstream reads (encryptionconfig.SetKDFForTests).
//
// Exit codes: 0 ok, 1 the transformer refused the value, 2 usage or config error.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apiserver/pkg/server/options/encryptionconfig"
	"k8s.io/apiserver/pkg/storage/value"
	utilfeature "k8s.io/apiserver/pkg/util/feature"
)

// aad is the value.Context kube-apiserver's etcd3 store passes: the full etcd key.
type aad []byte

func (a aad) AuthenticatedData() []byte { return a }

func main() {
	putMany := len(os.Args) == 7 && os.Args[1] == "put-many"
	if !putMany && (len(os.Args) != 5 || (os.Args[1] != "seal" && os.Args[1] != "open")) {
		fmt.Fprintln(os.Stderr, "usage: k8scrypt seal|open CONFIG RESOURCE ETCD_KEY | put-many CONFIG RESOURCE ENDPOINT PREFIX COUNT")
		os.Exit(2)
	}
	if err := utilfeature.DefaultMutableFeatureGate.Set("KMSv1=true"); err != nil {
		fmt.Fprintln(os.Stderr, "k8scrypt:", err)
		os.Exit(2)
	}
	for _, name := range strings.Split(os.Getenv("K8SCRYPT_KMSV2_NO_KDF"), ",") {
		if name != "" {
			encryptionconfig.SetKDFForTests(name, false)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cfg, err := encryptionconfig.LoadEncryptionConfig(ctx, os.Args[2], false, "k8scrypt")
	if err != nil {
		fmt.Fprintln(os.Stderr, "k8scrypt:", err)
		os.Exit(2)
	}
	t, ok := cfg.Transformers[schema.ParseGroupResource(os.Args[3])]
	if !ok {
		fmt.Fprintf(os.Stderr, "k8scrypt: the config does not cover %s\n", os.Args[3])
		os.Exit(2)
	}
	if putMany {
		if err := putValues(ctx, t, os.Args[4], os.Args[5], os.Args[6]); err != nil {
			fmt.Fprintln(os.Stderr, "k8scrypt:", err)
			os.Exit(1)
		}
		return
	}
	in, err := io.ReadAll(os.Stdin)
	if err != nil {
		fmt.Fprintln(os.Stderr, "k8scrypt:", err)
		os.Exit(2)
	}
	var out []byte
	if os.Args[1] == "seal" {
		out, err = t.TransformToStorage(ctx, in, aad(os.Args[4]))
	} else {
		out, _, err = t.TransformFromStorage(ctx, in, aad(os.Args[4]))
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "k8scrypt:", err)
		os.Exit(1)
	}
	_, _ = os.Stdout.Write(out)
}

// putValues seals count Secret-like values (about 400 bytes of plaintext)
// under prefix<ns>/<name>, 100 namespaces, and puts them in transactions of
// 500 operations.
func putValues(ctx context.Context, t value.Transformer, endpoint, prefix, countArg string) error {
	count, err := strconv.Atoi(countArg)
	if err != nil || count < 0 {
		return fmt.Errorf("bad count %q", countArg)
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{endpoint}, DialTimeout: 10 * time.Second})
	if err != nil {
		return err
	}
	defer cli.Close()
	pad := strings.Repeat("x", 300)
	var ops []clientv3.Op
	flush := func() error {
		if len(ops) == 0 {
			return nil
		}
		_, err := cli.Txn(ctx).Then(ops...).Commit()
		ops = ops[:0]
		return err
	}
	for i := 0; i < count; i++ {
		key := fmt.Sprintf("%sns-%02d/secret-%06d", prefix, i%100, i)
		plain := fmt.Sprintf(`{"kind":"Secret","apiVersion":"v1","metadata":{"name":"secret-%06d","namespace":"ns-%02d"},"data":{"password":"%s"}}`, i, i%100, pad)
		stored, err := t.TransformToStorage(ctx, []byte(plain), aad(key))
		if err != nil {
			return fmt.Errorf("sealing %s: %w", key, err)
		}
		ops = append(ops, clientv3.OpPut(key, string(stored)))
		if len(ops) == 500 {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	return flush()
}
