package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strings"

	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/rest"
)

// config is a rest.Config for the test's kube-apiserver: loopback,
// self-signed certificate, the static token in $K8SDRIVER_TOKEN (the test's
// --token-auth-file; anonymous requests are turned off by kube-apiserver
// under AlwaysAllow).
func config(server string) *rest.Config {
	return &rest.Config{
		Host:            server,
		BearerToken:     os.Getenv("K8SDRIVER_TOKEN"),
		TLSClientConfig: rest.TLSClientConfig{Insecure: true},
		QPS:             1000,
		Burst:           1000,
		UserAgent:       "etcdsnap-k8sdriver",
	}
}

func serverFlag(fs *flag.FlagSet) *string {
	return fs.String("server", "", "https://127.0.0.1:PORT of the kube-apiserver")
}

func parse(fs *flag.FlagSet, args []string, server *string) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *server == "" {
		return fmt.Errorf("%s: --server is required", fs.Name())
	}
	return nil
}

// resource is "[group/]version/resource[@namespace]".
type resource struct {
	gvr       schema.GroupVersionResource
	namespace string
}

func parseResource(s string) (resource, error) {
	var r resource
	spec, ns, _ := strings.Cut(s, "@")
	r.namespace = ns
	parts := strings.Split(spec, "/")
	switch len(parts) {
	case 2:
		r.gvr = schema.GroupVersionResource{Version: parts[0], Resource: parts[1]}
	case 3:
		r.gvr = schema.GroupVersionResource{Group: parts[0], Version: parts[1], Resource: parts[2]}
	default:
		return r, fmt.Errorf("resource %q: want [group/]version/resource[@namespace]", s)
	}
	return r, nil
}

var stdout = json.NewEncoder(os.Stdout)

// emit writes one JSON line to stdout.
func emit(v any) {
	if err := stdout.Encode(v); err != nil {
		fail(fmt.Errorf("writing stdout: %w", err))
	}
}
