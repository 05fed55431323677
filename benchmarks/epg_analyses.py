r"""The EPG paper's analyses of a learned loss (issue 12; Houthooft et al. 2018, section 4.3 and
Figures 6 and 9), for a meta_train run:

  .venv/bin/python benchmarks/epg_analyses.py --logdir=runs/epg-Pendulum-v1-s0 --runs=5

1. KL divergence between successive policies during test-time training (Figure 6): fresh agents
   trained by the evolved loss (α = 0, no rewards), by a randomly initialised loss (α = 0) and by
   PPO (α = 1), with the same agents, tasks and noise; `RunResults.policy_kl` [U, runs], the KL
   from the policy before each update to the one after it, averaged over the buffer's states.
2. Sensitivity (Figure 9): ‖∂ l_t* / ∂ x_t'‖ for the loss of the buffer's last sample t* = N − 1
   against each input kind x (observations, actions, dones, [rewards,] policy outputs, memory)
   at every buffer position t', averaged over the runs' trained agents and their buffers.
3. Spearman rank correlation between the gradients of the learned loss and of PPO's loss with
   respect to the policy's parameters (memory unit excluded: PPO does not read it), over the
   fresh agents and the trained ones (section 4.3: about 0.5 in the paper), for the evolved and
   the random loss.

With --buffers_from=DIR (a dataset `train_agent --record` wrote on the same environment), the
buffers of 2 and 3 are recorded experience rather than each agent's own collection.

Writes docs/results/epg_analyses<tag>.json and docs/figures/epg_analyses<tag>.png.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags  # noqa: E402

from benchmarks.results_io import define_meta_test_flags, save_figure, write_result  # noqa: E402

_LOGDIR, _RUNS, _SEED, _TAG, _OUT = define_meta_test_flags(seed=2000)
_BUFFERS_FROM = flags.DEFINE_string("buffers_from", None, "Read the buffers of analyses 2 and 3 from a recorded RLDS "
                                    "dataset (train_agent --record) instead of collecting them with each agent.")

INPUT_KINDS = ("observations", "behaviour_actions", "episode_ends", "rewards", "policy_outputs", "memory")


def spearman(x, y) -> float:
  """Spearman's ρ of two vectors: Pearson's correlation of their ranks (ties broken by order;
  gradients are continuous, so ties are rare). Written here: scipy is not a dependency."""
  import numpy as np
  rx, ry = (np.argsort(np.argsort(v)).astype(np.float64) for v in (x, y))
  return float(np.corrcoef(rx, ry)[0, 1])


def collect_buffers(problem, agents, runs: int, seed):
  """One buffer [runs, N, ...] per agent, collected by that agent on the test family."""
  import tensorflow as tf
  task = problem.test_task(False, runs)
  env_seed, rollout_seed = tf.unstack(tf.random.experimental.stateless_split(seed, num=2))
  _, trajectory, _ = task.rollout(task.reset(env_seed, runs), problem._act_fn(runs), agents.policy, rollout_seed,
                                  problem.config.buffer_size)
  return trajectory


def recorded_buffers(directory: str, env_info, runs: int, length: int):
  """`runs` buffers [runs, N, ...] of recorded transitions: the first N of each copy's stream
  (`recording.replay_streams`: whole episodes dealt to copies in turn)."""
  import tensorflow as tf
  from tf_metarl.recording import replay_streams
  streams = replay_streams(directory, env_info, runs)
  if streams.rewards.shape[1] < length:
    raise SystemExit(f"error: {directory} holds {streams.rewards.shape[1]} transitions per buffer, fewer than N = "
                     f"{length}")
  return tf.nest.map_structure(lambda x: tf.constant(x[:, :length]), streams)


def run_slice(tree, run: int):
  import tensorflow as tf
  return tf.nest.map_structure(lambda x: x[run], tree)


def gradient_correlations(problem, agents, buffers, runs: int):
  """Spearman's ρ between ∇θ L_φ and ∇θ L_PPO (policy parameters without the memory unit), per run."""
  import numpy as np
  import tensorflow as tf
  phi = [tf.convert_to_tensor(v) for v in problem.objective.network.trainable_variables]
  loss_fn = problem._loss_fn(phi, tf.constant(0.5))  # L̂'s two terms, as the inner training computes them
  names = [v.path for v in problem.policy.trainable_variables]
  keep = [i for i, name in enumerate(names) if "memory" not in name]
  rhos = []
  for run in range(runs):
    policy, critic = run_slice(agents.policy, run), run_slice(agents.critic, run)
    batch = tf.nest.map_structure(lambda x: x[run][None], buffers)
    with tf.GradientTape(persistent=True) as tape:
      tape.watch(policy)
      out = loss_fn(problem.agent.objective_inputs(policy, critic, batch))
    flat = lambda grads: np.concatenate([grads[i].numpy().ravel() for i in keep])
    learned = flat(tape.gradient(out["epg_loss"], policy, unconnected_gradients=tf.UnconnectedGradients.ZERO))
    ppo = flat(tape.gradient(out["ppo_loss"], policy, unconnected_gradients=tf.UnconnectedGradients.ZERO))
    rhos.append(spearman(learned, ppo))
  return rhos


def sensitivity(problem, agents, buffers, runs: int):
  """{input kind: [N] mean over runs of ‖∂ l_{N−1} / ∂ x_t'‖} for the kinds the loss reads."""
  import numpy as np
  import tensorflow as tf
  out = {}
  for run in range(runs):
    policy, critic = run_slice(agents.policy, run), run_slice(agents.critic, run)
    batch = tf.nest.map_structure(lambda x: x[run][None], buffers)
    inputs = problem.agent.objective_inputs(policy, critic, batch)
    kinds = [k for k in INPUT_KINDS if k != "rewards" or problem.objective.reward_input]
    kinds = [k for k in kinds if inputs[k].shape.rank == 2 or inputs[k].shape[-1] > 0]
    with tf.GradientTape() as tape:
      tape.watch([inputs[k] for k in kinds])
      last = problem.objective.per_sample(inputs)[0, -1]
    grads = tape.gradient(last, [inputs[k] for k in kinds], unconnected_gradients=tf.UnconnectedGradients.ZERO)
    for kind, g in zip(kinds, grads):
      g = g.numpy()[0]  # [N] or [N, F]
      norm = np.abs(g) if g.ndim == 1 else np.linalg.norm(g, axis=-1)
      out.setdefault(kind, []).append(norm)
  return {k: np.mean(v, axis=0).tolist() for k, v in out.items()}


def main(argv):
  del argv
  import numpy as np
  import tensorflow as tf
  from tf_metarl.algorithms.epg import EPGTrainer, config_from_section
  trainer, config, restored = EPGTrainer.from_logdir(_LOGDIR.value)
  random_loss = EPGTrainer(config_from_section(config["epg"]), int(config["seed"]) + 12345)
  losses = {"evolved loss, no rewards": (trainer.problem, 0.0), "random loss, no rewards": (random_loss.problem, 0.0),
            "PPO, with rewards": (trainer.problem, 1.0)}
  runs, seed = _RUNS.value, tf.constant([_SEED.value, 11])
  record = {"command": "benchmarks/epg_analyses.py " + " ".join(sys.argv[1:]), "checkpoint": restored,
            "runs": runs, "seed": _SEED.value, "epg": config["epg"], "buffers_from": _BUFFERS_FROM.value,
            "kl": {}, "spearman": {}, "sensitivity": {}}
  for name, (problem, alpha) in losses.items():
    results = problem.compiled_meta_test(runs)(seed, alpha)
    kl = results.policy_kl.numpy()  # [U, runs]
    record["kl"][name] = {"mean": kl.mean(1).tolist(), "per_run": kl.T.tolist()}
    print(f"{name}: KL per update, first {kl[0].mean():.2e}, last {kl[-1].mean():.2e}", flush=True)
    if alpha == 1.0:
      continue
    fresh = problem.fresh_agents(tf.random.experimental.stateless_split(seed, num=3)[0], runs)
    for stage, agents in (("fresh agents", fresh), ("trained agents", results.agents)):
      if _BUFFERS_FROM.value:
        buffers = recorded_buffers(_BUFFERS_FROM.value, problem.env_info, runs, problem.config.buffer_size)
      else:
        buffers = collect_buffers(problem, agents, runs, tf.constant([_SEED.value, 12]))
      rhos = gradient_correlations(problem, agents, buffers, runs)
      record["spearman"][f"{name} | {stage}"] = {"per_run": rhos, "mean": float(np.mean(rhos)),
                                                 "std": float(np.std(rhos))}
      print(f"{name}, {stage}: Spearman ρ(∇L_φ, ∇L_PPO) {np.mean(rhos):.3f} ± {np.std(rhos):.3f}", flush=True)
      if stage == "trained agents":
        record["sensitivity"][name] = sensitivity(problem, agents, buffers, runs)
  record["figure"] = plot(record, os.path.join(_OUT.value, "figures", f"epg_analyses{_TAG.value}.png"))
  write_result(os.path.join(_OUT.value, "results", f"epg_analyses{_TAG.value}.json"), record)


def plot(record, path):
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  import numpy as np
  fig, axes = plt.subplots(1, 3, figsize=(17, 4.5))
  for name, kl in record["kl"].items():
    runs = np.array(kl["per_run"])  # [runs, U]
    low, median, high = np.percentile(runs, [25, 50, 75], axis=0)
    updates = np.arange(1, runs.shape[1] + 1)
    axes[0].plot(updates, median, label=name)
    axes[0].fill_between(updates, low, high, alpha=0.2)
  axes[0].set_yscale("log")
  axes[0].set_xlabel("update of the fresh agent")
  axes[0].set_ylabel("KL(π before ‖ π after)")
  axes[0].set_title(f"successive policies (median, quartiles of {record['runs']} runs)")
  axes[0].legend(fontsize=8)
  for ax, name in zip(axes[1:], record["sensitivity"]):
    kinds = list(record["sensitivity"][name])
    grid = np.array([record["sensitivity"][name][k] for k in kinds])
    image = ax.imshow(np.log10(grid + 1e-12), aspect="auto", interpolation="nearest")
    ax.set_yticks(range(len(kinds)), kinds)
    ax.set_xlabel("buffer position t'")
    ax.set_title(f"{name}: log10 ‖∂ l_(N−1) / ∂ x_t'‖")
    fig.colorbar(image, ax=ax)
  return save_figure(fig, path)


if __name__ == "__main__":
  app.run(main)
