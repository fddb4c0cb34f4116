# Writes devkit_meta{,_z}.mat: a 5-synset imitation of the ILSVRC2012 devkit's data/meta.mat
# (same struct fields; 4 leaves with ILSVRC2012_IDs not in sorted-wnid order, 1 parent),
# uncompressed and compressed. Run: python3 datasets/testdata/devkit_meta.py (needs scipy).
import numpy as np, scipy.io as sio, os
fields = ["ILSVRC2012_ID", "WNID", "words", "gloss", "num_children", "children", "wordnet_height", "num_train_images"]
rows = [
    (1, "n02119789", "kit fox", "small grey fox", 0, np.zeros((1, 0)), 0, 1300),
    (2, "n01440764", "tench", "a fish", 0, np.zeros((1, 0)), 0, 1300),
    (3, "n03000134", "chainlink fence", "a fence", 0, np.zeros((1, 0)), 0, 1300),
    (4, "n01443537", "goldfish", "a fish", 0, np.zeros((1, 0)), 0, 1300),
    (1001, "n00001740", "entity", "root", 4, np.array([[1.0, 2.0, 3.0, 4.0]]), 19, 0),
]
arr = np.zeros((len(rows), 1), dtype=[(f, "O") for f in fields])
for i, r in enumerate(rows):
    for f, v in zip(fields, r):
        arr[i, 0][f] = np.array([[float(v)]]) if isinstance(v, int) else v
here = os.path.dirname(os.path.abspath(__file__))
sio.savemat(os.path.join(here, "devkit_meta.mat"), {"synsets": arr}, do_compression=False)
sio.savemat(os.path.join(here, "devkit_meta_z.mat"), {"synsets": arr}, do_compression=True)
