// Command etcd is etcd 3.6.16's server, built from its Go module for etcdsnap's tests.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
