"""The meta level: inner problems, outer-gradient estimators (unrolled backpropagation, evolution
strategies, implicit differentiation) and the one meta-trainer."""
from tf_metarl.meta.evolution import EvolutionStrategiesEstimator
from tf_metarl.meta.implicit import ImplicitEstimator
from tf_metarl.meta.problem import Episodes, InnerProblem
from tf_metarl.meta.unrolled import UnrolledEstimator

__all__ = ["EvolutionStrategiesEstimator", "ImplicitEstimator", "Episodes", "InnerProblem", "UnrolledEstimator"]
