"""How fast the tiny LM trains here: seconds, tokens/s and FLOP/s per model size, one thread.

    python benchmarks/tinylm_speed.py [--threads 1] [--tokens 2e5]

Use it to size the demo's search space (searchspaces/tiny_lm.toml) for a machine: a demo of ~48
trials over 2 cores should keep the median trial to a few seconds.
"""

from __future__ import annotations

import argparse

from carbs_like.tinylm import load_corpus, train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--tokens", type=float, default=2e5)
    args = parser.parse_args()
    load_corpus()  # read the stdlib once, outside the timings
    print(f"{'n_params':>9} {'d_model':>7} {'tokens':>8} {'seconds':>8} {'tokens/s':>9} {'GFLOP/s':>8} {'val loss':>8}")
    for n_params in (1e4, 3e4, 1e5, 2e5, 5e5):
        r = train({"n_params": n_params, "tokens": args.tokens, "lr": 3e-3, "batch_size": 16,
                   "weight_decay": 0.1}, threads=args.threads)
        print(f"{r['n_params']:>9} {r['d_model']:>7} {r['tokens']:>8} {r['seconds']:>8.2f} "
              f"{r['tokens'] / r['seconds']:>9.0f} {r['flops'] / r['seconds'] / 1e9:>8.2f} {r['loss']:>8.4f}")


if __name__ == "__main__":
    main()
