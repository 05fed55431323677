"""Environment factories, space descriptions, and TensorFlow-native batched environments."""
from tf_metarl.envs.gym_envs import EnvInfo, describe_env, make_env, make_vector_env
from tf_metarl.envs.registration import ENVIRONMENTS, register_all

register_all()

__all__ = ["ENVIRONMENTS", "EnvInfo", "describe_env", "make_env", "make_vector_env", "register_all"]
