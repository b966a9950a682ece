"""etcd-replicator: mirror a primary Kubernetes cluster's etcd into a standby's, under rules."""

__version__ = "0.1.0"
