package main

import (
	"context"
	"flag"
	"fmt"
	"sort"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/dynamic"
)

// runDump lists every object of each resource named on the command line.
func runDump(args []string) error {
	fs := flag.NewFlagSet("dump", flag.ContinueOnError)
	server := serverFlag(fs)
	if err := parse(fs, args, server); err != nil {
		return err
	}
	dyn, err := dynamic.NewForConfig(config(*server))
	if err != nil {
		return err
	}
	for _, spec := range fs.Args() {
		r, err := parseResource(spec)
		if err != nil {
			return err
		}
		list, err := dyn.Resource(r.gvr).Namespace(r.namespace).List(context.Background(), metav1.ListOptions{})
		if err != nil {
			return fmt.Errorf("list %s: %w", spec, err)
		}
		items := list.Items
		sort.Slice(items, func(i, j int) bool {
			if items[i].GetNamespace() != items[j].GetNamespace() {
				return items[i].GetNamespace() < items[j].GetNamespace()
			}
			return items[i].GetName() < items[j].GetName()
		})
		for _, it := range items {
			// A list leaves apiVersion/kind off its items; put them back so
			// every line names what it is.
			it.SetAPIVersion(list.GetAPIVersion())
			it.SetKind(trimList(list.GetKind()))
			emit(it.Object)
		}
	}
	return nil
}

func trimList(kind string) string {
	if len(kind) > 4 && kind[len(kind)-4:] == "List" {
		return kind[:len(kind)-4]
	}
	return kind
}

// runGet reads one object; a failure prints the server's message.
func runGet(args []string) error {
	fs := flag.NewFlagSet("get", flag.ContinueOnError)
	server := serverFlag(fs)
	if err := parse(fs, args, server); err != nil {
		return err
	}
	if fs.NArg() != 2 {
		return fmt.Errorf("get: want RES NAME")
	}
	r, err := parseResource(fs.Arg(0))
	if err != nil {
		return err
	}
	dyn, err := dynamic.NewForConfig(config(*server))
	if err != nil {
		return err
	}
	obj, err := dyn.Resource(r.gvr).Namespace(r.namespace).Get(context.Background(), fs.Arg(1), metav1.GetOptions{})
	if err != nil {
		return err
	}
	emit(obj.Object)
	return nil
}
