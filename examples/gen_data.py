"""Writes examples/*.data.json: small deterministic data for every example.

Run from the repository root: python3 examples/gen_data.py
"""
import json
import math
import random

rng = random.Random(20261122)


def mat(r, c, s=1.0):
    return [[round(rng.gauss(0, s), 6) for _ in range(c)] for _ in range(r)]


def vec(n, s=1.0):
    return [round(rng.gauss(0, s), 6) for _ in range(n)]


def ints(n, k):
    return [rng.randrange(k) for _ in range(n)]


data = {
    "neuron": {"x": vec(3), "t": 1.0, "w": vec(3, 0.5), "b": 0.1},
    "logreg": {"X": mat(8, 3), "y": [float(rng.randrange(2)) for _ in range(8)],
               "w": vec(3, 0.5), "b": 0.0},
    "mlp": {"x": mat(5, 4), "y": mat(5, 2), "W1": mat(4, 6, 0.5), "b1": vec(6, 0.1),
            "W2": mat(6, 2, 0.5), "b2": vec(2, 0.1)},
    "classifier": {"x": mat(6, 4), "labels": ints(6, 3), "W1": mat(4, 5, 0.5),
                   "b1": vec(5, 0.1), "W2": mat(5, 3, 0.5), "b2": vec(3, 0.1)},
    "nlm": {"w1": ints(4, 10), "w2": ints(4, 10), "w3": ints(4, 10), "next": ints(4, 10),
            "E": mat(10, 3, 0.5), "C1": mat(3, 5, 0.5), "C2": mat(3, 5, 0.5),
            "C3": mat(3, 5, 0.5), "bh": vec(5, 0.1), "U": mat(5, 10, 0.5), "bo": vec(10, 0.1)},
    "deep": dict({"x": mat(4, 5), "y": mat(4, 5, 0.5)},
                 **{k: v for i in range(1, 7)
                    for k, v in ((f"W{i}", mat(5, 5, 0.5)), (f"b{i}", vec(5, 0.1)))}),
}
V, K = 7, 3
counts = [[rng.randrange(0, 20) if rng.random() < 0.6 else 0 for _ in range(V)] for _ in range(V)]
data["glove"] = {
    "logX": [[math.log(c) if c > 0 else 0.0 for c in row] for row in counts],
    "f": [[min(1.0, (c / 10) ** 0.75) if c > 0 else 0.0 for c in row] for row in counts],
    "W": mat(V, K, 0.3), "Wt": mat(V, K, 0.3), "b": vec(V, 0.1), "bt": vec(V, 0.1),
}

for name, d in data.items():
    lines = []
    for key, value in d.items():
        if isinstance(value, list) and value and isinstance(value[0], list):
            rows = ",\n    ".join(json.dumps(row) for row in value)
            text = "[\n    " + rows + "\n  ]"
        else:
            text = json.dumps(value)
        lines.append(f"  {json.dumps(key)}: {text}")
    with open(f"examples/{name}.data.json", "w") as out:
        out.write("{\n" + ",\n".join(lines) + "\n}\n")
