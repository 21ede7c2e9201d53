// Command k8scrypt seals and opens values exactly as kube-apiserver does:
// it loads an EncryptionConfiguration with k8s.io/apiserver's own loader
// (encryptionconfig.LoadEncryptionConfig) and runs the transformer it builds
// for a resource, with the etcd key as authenticated data. etcdsnap's tests
// use it to produce and check encrypted values without a whole API server.
//
//	k8scrypt seal CONFIG RESOURCE ETCD_KEY < plaintext > stored
//	k8scrypt open CONFIG RESOURCE ETCD_KEY < stored > plaintext
//
// Exit codes: 0 ok, 1 the transformer refused the value, 2 usage or config error.
package main

import (
	"context"
	"fmt"
	"io"
	"os"

	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apiserver/pkg/server/options/encryptionconfig"
)

// aad is the value.Context kube-apiserver's etcd3 store passes: the full etcd key.
type aad []byte

func (a aad) AuthenticatedData() []byte { return a }

func main() {
	if len(os.Args) != 5 || (os.Args[1] != "seal" && os.Args[1] != "open") {
		fmt.Fprintln(os.Stderr, "usage: k8scrypt seal|open CONFIG RESOURCE ETCD_KEY")
		os.Exit(2)
	}
	ctx := context.Background()
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
