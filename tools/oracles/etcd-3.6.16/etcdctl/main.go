// Command etcdctl is etcd 3.6.16's etcdctl, built from its Go module for etcdsnap's tests.
package main

import "go.etcd.io/etcd/etcdctl/v3/ctlv3"

func main() { ctlv3.MustStart() }
