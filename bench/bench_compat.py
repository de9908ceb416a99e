"""Effect of each ``compat=paper`` quirk alone on the digits preset's first selection.

For each seed, cycle 0's model is trained exactly as a run trains it (same seeds), then each
quirk is switched on by itself and the script counts the picks that differ from the clean
selection (b − |clean ∩ quirk|, out of b). With ``--store``, the selection-only quirks (rounded
KCenterGreedy features, the old Entropy L1 Pseudo Label rules) are also re-applied to every
selecting cycle of the store's finished clean digits runs of those strategies, from their saved
arrays. Ω truncation has no effect at the preset's sizes
((|L| + b)/C is an integer at every cycle, as at the paper's CIFAR sizes), so it is measured
with b = 25, where the exact threshold is 7.5 and the truncated one 7.

    python bench/bench_compat.py --seeds 0,1,2,3,4 [--store cache]
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from cbal.config import preset
from cbal.loop import cycle_seed, prepare
from cbal.models import build_model
from cbal.strategies import STRATEGIES, SelectionContext, kcenter, paper, scores
from cbal.strategies.balance import class_counts
from cbal.train import DeviceImages, augmentation, infer, train_model


def _trained(cfg, prep, images):
    seed = cycle_seed(cfg.seed, 0)
    torch.manual_seed(seed)
    model = build_model(cfg.model, prep.num_classes, prep.dataset.image_shape[0], cfg.dropout)
    labeled = prep.pool.labeled
    return train_model(model, images, labeled, prep.dataset.y_train[labeled], cfg, seed), seed


def _differ(a: np.ndarray, b: np.ndarray) -> int:
    return len(a) - len(np.intersect1d(a, b))


def _select(name, probs, counts, compat, budget, **kw):
    ctx = SelectionContext(probs=probs, labeled_counts=counts, compat=compat, **kw)
    return STRATEGIES[name].select(ctx, budget).indices


def measure(seed: int) -> dict[str, int]:
    cfg = preset("digits", seed=seed, device="cpu")
    prep = prepare(cfg)
    ds = prep.dataset
    images = DeviceImages.create(ds.x_train, ds.mean, ds.std, torch.device("cpu"))
    pool, labeled, b = prep.pool.unlabeled, prep.pool.labeled, cfg.budget
    counts = class_counts(ds.y_train[labeled], prep.num_classes)
    model, s = _trained(cfg, prep, images)
    aug = augmentation(cfg, images)
    clean = infer(model, images, pool, cfg.eval_batch_size, seed=s)
    augd = infer(model, images, pool, cfg.eval_batch_size, seed=s, augment=aug)
    lab_clean = infer(model, images, labeled, cfg.eval_batch_size).embeddings
    lab_aug = infer(model, images, labeled, cfg.eval_batch_size, seed=s + 1, augment=aug)
    kc = kcenter.kcenter_greedy(clean.embeddings, lab_clean, b)
    rounded = paper.round_embeddings
    out = {
        "entropy: augmented pool": _differ(
            scores.top_k(scores.entropy(clean.probs), b),
            scores.top_k(scores.entropy(augd.probs), b),
        ),
        "kcenter: augmented features": _differ(
            kc, kcenter.kcenter_greedy(augd.embeddings, lab_aug.embeddings, b)
        ),
        "kcenter: rounded features": _differ(
            kc, kcenter.kcenter_greedy(rounded(clean.embeddings), rounded(lab_clean), b)
        ),
        "entropy-pl: old quota rules": _differ(
            _select("entropy-pl", clean.probs, counts, "clean", b),
            _select("entropy-pl", clean.probs, counts, "paper", b, rng=np.random.default_rng(s)),
        ),
        "entropy-cb: truncated Ω (b=25)": _differ(
            _select("entropy-cb", clean.probs, counts, "clean", 25, lam=0.6),
            _select("entropy-cb", clean.probs, counts, "paper", 25, lam=0.6),
        ),
    }
    bald = {}
    for source in ("dropout", "batchnorm"):
        bcfg = cfg.replace(strategy="bald", mc_source=source)
        bmodel, _ = _trained(bcfg, prep, images)
        mc = infer(bmodel, images, pool, cfg.eval_batch_size, 10, s, source).mc_probs
        bald[source] = scores.top_k(scores.bald(mc), b)
    out["bald: BatchNorm MC (no dropout)"] = _differ(bald["dropout"], bald["batchnorm"])
    return out


def measure_saved(root: str) -> dict[str, list[list[int]]]:
    """Per run, the picks differing from the run's own at each cycle with its quirk on."""
    from cbal import explore
    from cbal.store import Store

    store = Store(root)
    out: dict[str, list[list[int]]] = {}
    for info in store.list_runs():
        c = info.config
        if info.state != "done" or c.compat != "clean" or c.dataset != "digits":
            continue
        if c.strategy not in ("kcenter", "kcenter-cb", "entropy-pl"):
            continue
        diffs = []
        for k in range(c.cycles):
            ca = explore.load_cycle(store, info.run_id, k)
            ctx = SelectionContext(
                probs=ca.probs.astype(np.float64),
                labeled_counts=ca.labeled_counts,
                embeddings=ca.embeddings,
                labeled_embeddings=ca.labeled_embeddings,
                lam=ca.lam,
                compat="paper",
                rng=np.random.default_rng(cycle_seed(c.seed, k)),
            )
            picks = STRATEGIES[c.strategy].select(ctx, c.budget).indices
            diffs.append(_differ(ca.selected_pos, picks))
        out.setdefault(f"{c.strategy} IF {c.imbalance_factor:g}", []).append(diffs)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2,3,4")
    parser.add_argument("--store", default=None, help="re-select this store's clean runs too")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    torch.set_num_threads(1)
    rows = [measure(s) for s in seeds]
    b = preset("digits").budget
    print(f"picks differing from clean at cycle 0 (of {b}; b=25 for Ω), seeds {seeds}")
    for key in rows[0]:
        values = [r[key] for r in rows]
        print(f"  {key:34s} mean {np.mean(values):5.1f}  per seed {values}")
    if args.store:
        print(
            f"picks differing from the run's own per cycle (of {b}), saved arrays, mean over runs"
        )
        for key, runs in sorted(measure_saved(args.store).items()):
            per_cycle = np.mean(runs, axis=0).round(1).tolist()
            print(f"  {key:34s} {len(runs)} runs: {per_cycle}")


if __name__ == "__main__":
    main()
