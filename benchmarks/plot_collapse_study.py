"""Draws docs/figures/ppo_collapse_study.png from docs/results/ppo_collapse_study.json (the late-dip
rates of PPO variants on CartPole-v1 in docs/RESULTS.md, issue 10).

  .venv/bin/python benchmarks/plot_collapse_study.py
"""
import json
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
out = json.load(open("docs/results/ppo_collapse_study.json"))
fig, ax = plt.subplots(figsize=(13, 6.5))
vs = out["variants"]
y = list(range(len(vs)))
ax.barh([i - 0.2 for i in y], [v["dips"] / v["seeds"] for v in vs], height=0.4, label="a training row < 400 after 300k steps")
ax.barh([i + 0.2 for i in y], [v["ending_below_475"] / v["seeds"] for v in vs], height=0.4, label="last 20% of rows average < 475")
ax.set_yticks(y)
ax.set_yticklabels([f"{v['variant'][:78]} (n={v['seeds']})" for v in vs], fontsize=7)
ax.invert_yaxis()
ax.set_xlabel("fraction of seeds")
ax.legend(fontsize=8)
ax.set_title("PPO on CartPole-v1, 500k steps per seed: late dips by variant")
fig.subplots_adjust(left=0.42, right=0.98, top=0.94, bottom=0.08)
fig.savefig("docs/figures/ppo_collapse_study.png", dpi=110)
