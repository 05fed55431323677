"""Meta-optimisers' gradient estimators."""
from tf_metarl.meta.unrolled import unrolled_meta_gradient

__all__ = ["unrolled_meta_gradient"]
