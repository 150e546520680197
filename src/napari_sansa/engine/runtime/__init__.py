"""The runtime: image features and their caches (memory, disk), host memory, prefetching."""
