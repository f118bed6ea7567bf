// CoreDNS with the plugins a cluster DNS needs (the set kubeadm's Corefile uses, less `forward`:
// this cluster has no upstream resolver to reach). Built by ../build.sh (K8S_NODE=1) for the
// single-node cluster of `make e2e-cluster`; CoreDNS's own main imports every plugin, whose cloud
// SDKs would triple the build time for nothing this cluster uses.
package main

import (
	"github.com/coredns/coredns/coremain"

	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/loadbalance"
	_ "github.com/coredns/coredns/plugin/log"
	_ "github.com/coredns/coredns/plugin/loop"
	_ "github.com/coredns/coredns/plugin/metrics"
	_ "github.com/coredns/coredns/plugin/ready"
	_ "github.com/coredns/coredns/plugin/reload"
)

func main() {
	coremain.Run()
}
