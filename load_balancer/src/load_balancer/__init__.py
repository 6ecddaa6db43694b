"""Load balancer: spreads /itens traffic over the item servers."""
