"""Write ``minilm_reference.json`` and ``minilm_reference.npy``: all-MiniLM-L6-v2 vectors
of 50 texts computed by sentence-transformers/torch, the reference the default (ONNX)
runtime is tested against without torch installed.

Run once (needs the ``local-torch`` extra; the texts are picked from the evaluation sets
in ``../shared/eval-data`` plus edge cases), from the repository root:

    python tests/data/make_minilm_reference.py ../shared/eval-data

Vectors are stored as float16 (50 x 384 x 2 bytes); float16 rounding moves a unit
vector's cosine by less than 1e-6.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
EDGE_CASES = [
    "",
    "   ",
    "?",
    "Paris",
    "What is the capital of France?",
    "Qu'est-ce que la capitale de la France ? Réponse en français, s'il vous plaît.",
    "東京の人口は何人ですか？",  # noqa: RUF001  # a full-width question mark, on purpose
    "Is 3.14159 more than 22/7? 🤔 #math @home",
    "How do I reset my password " * 40,  # longer than the model's 256 tokens: truncated
]


def pick_texts(eval_dir: Path, count: int) -> list[str]:
    texts = list(EDGE_CASES)
    files = sorted(eval_dir.glob("*.jsonl"))
    per_file = (count - len(texts)) // len(files) + 1
    for path in files:
        lines = path.read_text(encoding="utf-8").splitlines()
        step = max(1, len(lines) // per_file)
        for line in lines[::step][:per_file]:
            pair = json.loads(line)
            for text in (pair["a"], pair["b"]):
                if text not in texts and len(texts) < count:
                    texts.append(text)
    return texts[:count]


def main() -> None:
    from sentence_transformers import SentenceTransformer

    from llmemo.local import bundled_model_path

    texts = pick_texts(Path(sys.argv[1]), 50)
    model = SentenceTransformer(str(bundled_model_path()), device="cpu", local_files_only=True)
    vectors = model.encode(texts, normalize_embeddings=True, convert_to_numpy=True)
    np.save(HERE / "minilm_reference.npy", vectors.astype(np.float16))
    (HERE / "minilm_reference.json").write_text(
        json.dumps({"model": "all-MiniLM-L6-v2", "texts": texts}, ensure_ascii=False, indent=1)
        + "\n",
        encoding="utf-8",
    )


if __name__ == "__main__":
    main()
