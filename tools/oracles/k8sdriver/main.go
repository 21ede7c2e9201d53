// k8sdriver: the client side of the Kubernetes end-to-end test
// (crates/cli/tests/k8s_e2e.rs), built with client-go against a real
// kube-apiserver. Subcommands:
//
//	apply    --server URL          JSON lines {"op":"create|dry-run-create|update|delete","object":{...}}
//	                               on stdin; prints each resulting object (delete: its last state) as a
//	                               JSON line; dry-run-create is a create with dryRun=All (server-side dry run)
//	dump     --server URL RES...   every object of each RES ([group/]version/resource[@namespace]),
//	                               one JSON line each, sorted by resource, namespace, name
//	get      --server URL RES NAME one object (exit 1 with the server's message when it fails)
//	informer --server URL --namespace NS
//	                               a shared informer on ConfigMaps and Secrets of NS; every event
//	                               (and every list, watch start and watch error) is a JSON line on
//	                               stdout; "dump" on stdin prints the informer's store
//	ready    --server URL          waits until /readyz answers "ok"
//	sakeys   DIR                   writes a service-account key pair DIR/sa.key, DIR/sa.pub
//	watch    --server URL --rv RV RES
//	                               one watch from RV: the server's refusal or its first event
//
// The server is a kube-apiserver on loopback with self-signed certificates,
// a static token (sent from $K8SDRIVER_TOKEN) and AlwaysAllow: TLS is not
// verified. Errors go to stderr with exit status 1.
package main

import (
	"fmt"
	"os"
)

func main() {
	// List+watch, not the streaming watch-list, so every re-list is a LIST
	// request the informer can report.
	_ = os.Setenv("KUBE_FEATURE_WatchListClient", "false")
	if len(os.Args) < 2 {
		fail(fmt.Errorf("usage: k8sdriver apply|dump|get|informer|ready|sakeys|watch URL ..."))
	}
	var err error
	switch os.Args[1] {
	case "apply":
		err = runApply(os.Args[2:])
	case "dump":
		err = runDump(os.Args[2:])
	case "get":
		err = runGet(os.Args[2:])
	case "informer":
		err = runInformer(os.Args[2:])
	case "ready":
		err = runReady(os.Args[2:])
	case "sakeys":
		err = runSAKeys(os.Args[2:])
	case "watch":
		err = runWatch(os.Args[2:])
	default:
		err = fmt.Errorf("unknown subcommand %q", os.Args[1])
	}
	if err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintf(os.Stderr, "k8sdriver: %v\n", err)
	os.Exit(1)
}
