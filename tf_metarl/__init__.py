"""tf_metarl: meta-learned reinforcement-learning objectives, exported as TensorFlow SavedModels."""

__version__ = "0.1.0"
