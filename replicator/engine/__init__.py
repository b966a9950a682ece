"""Engine: full sync, watch, batched writes; composes the etcd, kube, rules and journal layers."""
