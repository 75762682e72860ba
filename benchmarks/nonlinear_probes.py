"""Linear and two-layer-network probes of a model's codes on generated avatars (a check that the
linear probes of `ccvae eval` are not fooled): each label read from z_s, and each label's variant
(its style part where the variant is 'style/colour') read from z_c^i, from z_s and from all of z.

    python benchmarks/nonlinear_probes.py DATA MODEL [MODEL ...]

DATA: a `ccvae data avatars` folder. Codes of 5,000 train and the first 1,000 test images."""
import sys, numpy as np, torch
from pathlib import Path
from ccvae_tools.model.api import load
from ccvae_tools.evaluation.run import open_eval_data
from ccvae_tools.evaluation.metrics import fit_softmax_regression, coarse_variants, chance_level
from ccvae_tools.evaluation.truth import load_ground_truth, capture_class
from ccvae_tools.data.base import TRAIN, TEST

def mlp_acc(xtr, ytr, xte, yte, steps=600, seed=0):
    torch.manual_seed(seed)
    classes = np.unique(ytr); yi = np.searchsorted(classes, ytr)
    mu, sd = xtr.mean(0), xtr.std(0) + 1e-6
    Xtr = torch.tensor((xtr - mu) / sd, dtype=torch.float32); Xte = torch.tensor((xte - mu) / sd, dtype=torch.float32)
    net = torch.nn.Sequential(torch.nn.Linear(Xtr.shape[1], 128), torch.nn.ReLU(), torch.nn.Linear(128, 128),
                              torch.nn.ReLU(), torch.nn.Linear(128, len(classes)))
    opt = torch.optim.Adam(net.parameters(), 3e-3, weight_decay=1e-4); Y = torch.tensor(yi)
    for _ in range(steps):
        opt.zero_grad(); torch.nn.functional.cross_entropy(net(Xtr), Y).backward(); opt.step()
    pred = classes[net(Xte).argmax(1).numpy()]
    return float((pred == yte).mean())

def lin_acc(xtr, ytr, xte, yte):
    classes = np.unique(ytr); yi = np.searchsorted(classes, ytr)
    p = fit_softmax_regression(xtr, yi, len(classes))
    return float((classes[p(xte)] == yte).mean())

data_dir = Path(sys.argv[1])
for w in sys.argv[2:]:
    m = load(w)
    _, data = open_eval_data(data_dir, m.meta, None, None, None, workers=1)
    truth = load_ground_truth([data_dir], data.files, [l.name for l in m.model.cfg.labels])
    rng = np.random.default_rng(0)
    tr = np.sort(rng.choice(data.indices(TRAIN), 5000, replace=False)); te = data.indices(TEST)[:1000]
    mu_tr = m.encode(np.ascontiguousarray(data.images[tr]))[0].numpy(); mu_te = m.encode(np.ascontiguousarray(data.images[te]))[0].numpy()
    zc = m.model.cfg.z_char
    print(w)
    ys = []
    for i, lab in enumerate(m.model.cfg.labels):
        ytr, yte = data.labels[tr, i].astype(int), data.labels[te, i].astype(int)
        ys.append(f"{lab.name[:6]} {lin_acc(mu_tr[:, zc:], ytr, mu_te[:, zc:], yte):.2f}/{mlp_acc(mu_tr[:, zc:], ytr, mu_te[:, zc:], yte):.2f}")
    print('  y from z_s lin/mlp:', ' '.join(ys))
    for i, lab in enumerate(m.model.cfg.labels):
        var = truth.variants(lab.name)
        which = capture_class(np.concatenate([data.labels[tr, i], data.labels[te, i]]), np.concatenate([var[tr], var[te]]), lab.num_classes)
        if which == 'skip': continue
        sel_tr = data.labels[tr, i] == which; sel_te = data.labels[te, i] == which
        vtr, vte = var[tr][sel_tr].astype(str), var[te][sel_te].astype(str)
        c = coarse_variants(vtr)
        if c is not None: vtr, vte = c, coarse_variants(vte)
        sl = m.model.label_slice(i)
        a = [lin_acc(mu_tr[sel_tr, sl], vtr, mu_te[sel_te, sl], vte), lin_acc(mu_tr[sel_tr, zc:], vtr, mu_te[sel_te, zc:], vte),
             mlp_acc(mu_tr[sel_tr, sl], vtr, mu_te[sel_te, sl], vte), mlp_acc(mu_tr[sel_tr, zc:], vtr, mu_te[sel_te, zc:], vte),
             mlp_acc(mu_tr[sel_tr], vtr, mu_te[sel_te], vte)]
        print(f"  {lab.name:20s} {'coarse' if c is not None else '':6s} chance {chance_level(vtr, vte):.2f}  lin zc {a[0]:.2f} zs {a[1]:.2f} | mlp zc {a[2]:.2f} zs {a[3]:.2f} all z {a[4]:.2f}")
