"""go.etcd.io/etcd/api/v3@v3.6.17 stubs; regenerate with scripts/gen_etcd_stubs.py."""
