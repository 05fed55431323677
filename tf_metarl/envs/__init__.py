"""Environment factories and space descriptions."""
from tf_metarl.envs.gym_envs import EnvInfo, describe_env, make_vector_env, make_env

__all__ = ["EnvInfo", "describe_env", "make_vector_env", "make_env"]
