// Module build of tools/boltoracle against Go bbolt 1.5.0: install-oracles.sh
// copies tools/boltoracle/main.go beside this go.mod and go.sum and builds it.
module etcdsnap.test/oracles/boltoracle

go 1.26.0

require go.etcd.io/bbolt v1.5.0

require golang.org/x/sys v0.45.0 // indirect
