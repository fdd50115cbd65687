"""A plain PyTorch + scikit-learn reference for lmfloss's multi-label numbers (issue 28), written
without any lmfloss training, loss or data-loading code, to check lmfloss's numbers against.

``--dataset odir5k`` -- data as lmfloss reads it (``--dataset odir5k --task multilabel``): every
row of ``full_df.csv`` is one eye image (``filename``), its labels the patient-level 0/1 columns
N,D,G,C,A,H,M,O, its patient the ``ID`` column; 128 px -> 64 px. ``--dataset synthetic`` --
lmfloss's embedded multi-label set: the images and labels of
``lmfloss.data.synthetic.generate_multilabel`` (the generator only), each image its own group;
64 px -> 32 px. Test = the ``test`` rows of the manifest of ``lmfloss split``; the other
groups: 85 % train / 15 % validation, a random permutation of the sorted group ids
(``numpy.random.RandomState(seed)``). Images: PIL bilinear resize, [0, 1], ImageNet mean/std.
ResNet-18 from scratch, BCEWithLogitsLoss, Adam 1e-3, MultiStepLR [10, 15] x0.1, batch 64,
random horizontal flips; trained on images, scored per group (max over a patient's eyes, union
of truths); epoch chosen on validation mAP = mean sklearn AP over labels with a positive.
"""
import argparse
import csv
import json
import os
import platform
import sys
import time

import numpy as np
import sklearn
import torch
import torchvision
from PIL import Image
from sklearn.metrics import average_precision_score

MEAN, STD = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1), torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)

p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
p.add_argument("--dataset", choices=["odir5k", "synthetic"], default="odir5k")
p.add_argument("--manifest", required=True, help="lmfloss split --out CSV (path,labels,split)")
p.add_argument("--root", help="odir5k: the folder of full_df.csv + preprocessed_images/")
p.add_argument("--seed", type=int, required=True)
p.add_argument("--epochs", type=int, default=20)
p.add_argument("--threads", type=int, default=1)
p.add_argument("--limit", type=int, default=None, help="smoke test: at most this many patients per split")
p.add_argument("--out", required=True, help="JSON result file")
args = p.parse_args()
if args.dataset == "odir5k" and not args.root:
    p.error("--dataset odir5k needs --root (the folder of full_df.csv + preprocessed_images/)")
start = time.time()
torch.set_num_threads(args.threads)
torch.manual_seed(args.seed)
torch.use_deterministic_algorithms(True)

def stem(name):
    return os.path.splitext(os.path.basename(name.strip()))[0]


if args.dataset == "odir5k":
    LABELS, SIZE = ["N", "D", "G", "C", "A", "H", "M", "O"], 64
    with open(os.path.join(args.root, "full_df.csv"), newline="") as f:
        rows = list(csv.DictReader(f))
    eye_patient = {stem(r["filename"]): r["ID"].strip() for r in rows}
    eye_labels = {stem(r["filename"]): [int(float(r[c])) for c in LABELS] for r in rows}

    def pixels(e):
        return Image.open(os.path.join(args.root, "preprocessed_images", e + ".jpg")).convert("RGB")
else:  # the generator's arrays, not lmfloss's loaders: ids synml-00000 ... in generation order
    from lmfloss.data.synthetic import MULTILABEL_KINDS, generate_multilabel

    LABELS, SIZE = list(MULTILABEL_KINDS), 32
    images, targets, _ = generate_multilabel()
    eye_labels = {f"synml-{i:05d}": [int(v) for v in t] for i, t in enumerate(targets)}
    eye_patient = {e: e for e in eye_labels}

    def pixels(e):
        return Image.fromarray(images[int(e.split("-")[1])])


def ordered(ids):  # numeric ids (ODIR-5K's patients) in numeric order, others as text
    return sorted(ids, key=lambda i: (0, int(i), "") if i.isdigit() else (1, 0, i))


with open(args.manifest, newline="") as f:
    manifest = list(csv.DictReader(f))
assert sorted(stem(m["path"]) for m in manifest) == sorted(eye_labels), "manifest and the data list different images"
for m in manifest:  # the manifest's labels must be the data's (the same label source as lmfloss)
    assert {LABELS[j] for j, v in enumerate(eye_labels[stem(m["path"])]) if v} == set(filter(None, m["labels"].split(";")))
test_patients = ordered({eye_patient[stem(m["path"])] for m in manifest if m["split"] == "test"})
rest = ordered(set(eye_patient.values()) - set(test_patients))
rest = [rest[i] for i in np.random.RandomState(args.seed).permutation(len(rest))]
n_val = round(0.15 * len(rest))
patients = {"train": ordered(rest[n_val:]), "val": ordered(rest[:n_val]), "test": test_patients}
if args.limit:
    patients = {s: v[:args.limit] for s, v in patients.items()}
eyes_of = {}
for e in sorted(eye_patient):
    eyes_of.setdefault(eye_patient[e], []).append(e)

def load(split):
    eyes = [e for pt in patients[split] for e in eyes_of[pt]]
    x = np.stack([np.asarray(pixels(e).resize((SIZE, SIZE), Image.Resampling.BILINEAR)) for e in eyes])
    return (torch.from_numpy(x).permute(0, 3, 1, 2).contiguous(), torch.tensor([eye_labels[e] for e in eyes]).float(),
            np.array([eye_patient[e] for e in eyes]))

data = {s: load(s) for s in ("train", "val", "test")}
sizes = {s: {"patients": len(patients[s]), "images": len(data[s][0]),
             "patient_positives": dict(zip(LABELS, np.array([eye_labels[eyes_of[pt][0]] for pt in patients[s]]).sum(0).tolist()))}
         for s in data}
def prep(x):
    return ((x.float() / 255) - MEAN) / STD


def score(model, split):
    """Per-patient (max over eyes) probabilities and truths -> (mAP, per-label AP or None)."""
    x, y, pid = data[split]
    model.eval()
    with torch.no_grad():
        prob = torch.cat([torch.sigmoid(model(prep(x[i:i + 256]))) for i in range(0, len(x), 256)]).numpy()
    ids = ordered(set(pid))
    P = np.stack([prob[pid == i].max(0) for i in ids])
    Y = np.stack([y.numpy()[pid == i].max(0) for i in ids])
    ap = [float(average_precision_score(Y[:, j], P[:, j])) if Y[:, j].sum() > 0 else None for j in range(len(LABELS))]
    return float(np.mean([a for a in ap if a is not None])), dict(zip(LABELS, ap))

model = torchvision.models.resnet18(weights=None, num_classes=len(LABELS))
opt = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=0)
sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=[10, 15], gamma=0.1)
loss_fn, gen = torch.nn.BCEWithLogitsLoss(), torch.Generator().manual_seed(args.seed)
history, best = [], None
xtr, ytr, _ = data["train"]
for epoch in range(1, args.epochs + 1):
    model.train()
    t0, total = time.time(), 0.0
    order = torch.randperm(len(xtr), generator=gen)
    for i in range(0, len(order), 64):
        idx = order[i:i + 64]
        if len(idx) < 2:  # BatchNorm cannot train on a single image
            continue
        x = xtr[idx]
        flip = torch.rand(len(idx), generator=gen) < 0.5
        x = torch.where(flip.view(-1, 1, 1, 1), x.flip(3), x)
        loss = loss_fn(model(prep(x)), ytr[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        total += loss.item() * len(idx)
    sched.step()
    val_map, _ = score(model, "val")
    history.append({"epoch": epoch, "train_loss": total / len(xtr), "val_map": val_map, "seconds": time.time() - t0})
    print(json.dumps(history[-1]), flush=True)
    if best is None or val_map > best[1]:
        best = (epoch, val_map, {k: v.clone() for k, v in model.state_dict().items()})
model.load_state_dict(best[2])
test_map, test_ap = score(model, "test")
result = {"test_map": test_map, "test_ap": test_ap, "chosen_epoch": best[0], "val_map_chosen": best[1],
          "epochs": history, "sizes": sizes, "seed": args.seed, "threads": args.threads, "limit": args.limit,
          "wall_seconds": time.time() - start, "torch": torch.__version__, "torchvision": torchvision.__version__,
          "sklearn": sklearn.__version__, "python": platform.python_version(), "dataset": args.dataset,
          "command": " ".join([sys.executable, *sys.argv]), "manifest": os.path.abspath(args.manifest)}
os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
with open(args.out, "w") as f:
    json.dump(result, f, indent=2)
print(f"seed {args.seed}: epoch {best[0]} val mAP {best[1]:.4f} test mAP {test_map:.4f} ({result['wall_seconds']:.0f} s)")
