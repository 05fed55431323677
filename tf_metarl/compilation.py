"""Whether hot-path tf.functions use XLA (`jit_compile=True`) by default.

Measured with benchmarks/meta_gradient_cost.py on the 2-core CPU machine (TF 2.21, see
docs/RESULTS.md): XLA leaves a first-order policy update as fast as without it (17.7 vs 18.4 ms)
and makes a second-order meta step through the backward LSTM about 140x slower (6.4 s vs 45 ms:
XLA's CPU code for the LSTM's while loop differentiated twice), so the faster setting, and the
default, is no XLA. Re-measure on GPUs before changing it.

On the path the online meta-gradient methods run (the meta-trainer's step, rollouts included,
benchmarks/meta_gradient_cost.py since issue 7), XLA is 1.37x faster for FRODO, whose inner
gradient never differentiates through its LSTM; `meta_train` exposes it as
`config.learner.jit_compile`. EPG's in-graph epoch (`epg.jit_compile`) is 5.3x faster with XLA.

XLA draws other numbers than the CPU kernels from the same stateless seeds (its Philox differs,
even with alg="philox"), so a compiled run is another sample of the same run, not a copy of it.
"""

JIT_COMPILE = False
