"""etcd layer."""
