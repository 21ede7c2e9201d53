package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/restmapper"
)

type op struct {
	Op     string                     `json:"op"`
	Object *unstructured.Unstructured `json:"object"`
}

// runApply creates, updates and deletes objects of any kind the server
// serves (CRDs included: a custom resource waits until its CRD is served).
func runApply(args []string) error {
	fs := flag.NewFlagSet("apply", flag.ContinueOnError)
	server := serverFlag(fs)
	if err := parse(fs, args, server); err != nil {
		return err
	}
	cfg := config(*server)
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return err
	}
	disc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return err
	}
	cached := memory.NewMemCacheClient(disc)
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(cached)
	ctx := context.Background()

	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), 16<<20)
	for in.Scan() {
		if len(in.Bytes()) == 0 {
			continue
		}
		var o op
		if err := json.Unmarshal(in.Bytes(), &o); err != nil {
			return fmt.Errorf("input line %q: %w", in.Text(), err)
		}
		if o.Object == nil {
			return fmt.Errorf("input line %q: no object", in.Text())
		}
		obj := o.Object
		gvk := obj.GroupVersionKind()
		// A kind that a CRD created moments ago defines: discovery catches up.
		var mapping *meta.RESTMapping
		deadline := time.Now().Add(60 * time.Second)
		for {
			mapping, err = mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
			if err == nil || time.Now().After(deadline) {
				break
			}
			mapper.Reset()
			time.Sleep(200 * time.Millisecond)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", gvk, err)
		}
		var client dynamic.ResourceInterface = dyn.Resource(mapping.Resource)
		if mapping.Scope.Name() == meta.RESTScopeNameNamespace {
			client = dyn.Resource(mapping.Resource).Namespace(obj.GetNamespace())
		}
		var out *unstructured.Unstructured
		switch o.Op {
		case "create":
			out, err = client.Create(ctx, obj, metav1.CreateOptions{})
			if err == nil && gvk.Kind == "CustomResourceDefinition" {
				err = waitEstablished(ctx, client, obj.GetName())
				mapper.Reset()
			}
		case "dry-run-create":
			// Everything a create does on the server (defaulting, validation,
			// admission) but storing: what `kubectl apply --dry-run=server` asks.
			out, err = client.Create(ctx, obj, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		case "update":
			// A read-modify-write: the object as given, at the current resourceVersion.
			for {
				var cur *unstructured.Unstructured
				cur, err = client.Get(ctx, obj.GetName(), metav1.GetOptions{})
				if err != nil {
					break
				}
				obj.SetResourceVersion(cur.GetResourceVersion())
				out, err = client.Update(ctx, obj, metav1.UpdateOptions{})
				if !apierrors.IsConflict(err) {
					break
				}
			}
		case "delete":
			out, err = client.Get(ctx, obj.GetName(), metav1.GetOptions{})
			if err == nil {
				err = client.Delete(ctx, obj.GetName(), metav1.DeleteOptions{})
			}
		default:
			err = fmt.Errorf("unknown op %q", o.Op)
		}
		if err != nil {
			return fmt.Errorf("%s %s %s/%s: %w", o.Op, gvk.Kind, obj.GetNamespace(), obj.GetName(), err)
		}
		emit(out.Object)
	}
	return in.Err()
}

func waitEstablished(ctx context.Context, client dynamic.ResourceInterface, name string) error {
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		crd, err := client.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		conds, _, _ := unstructured.NestedSlice(crd.Object, "status", "conditions")
		for _, c := range conds {
			m, ok := c.(map[string]any)
			if ok && m["type"] == "Established" && m["status"] == "True" {
				return nil
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	return fmt.Errorf("CRD %s not established after 60s", name)
}
