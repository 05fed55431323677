"""Bridges to other libraries' pipelines. Each module here imports only TensorFlow and its target
library, never the rest of tf_metarl, so it runs in that library's own environment."""
