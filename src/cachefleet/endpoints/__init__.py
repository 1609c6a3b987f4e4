"""The data path of endpoints: kernel DNAT (nftables), floating addresses, and the failover follower."""
