"""Meta-learning algorithms, each a short composition of envs, networks, objectives and meta-optimisers."""
