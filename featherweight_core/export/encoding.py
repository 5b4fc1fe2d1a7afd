"""``encode.py``: the standalone encoder written next to a student's artefact (stdlib + numpy; sentencepiece and the
copied ``.model`` file for bpe), generated from the student's encoding settings, so text turns into the model's
inputs without this project."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from featherweight_core.data import encoders as enc
from featherweight_core.export.sources import ExportSource

ENCODER_FILE = "encode.py"


# ---------------------------------------------------------------------------------------------------------------
# text -> inputs without this project


def write_encoding(src: ExportSource, encoder, directory: Path, task) -> dict[str, Any]:
    if not src.is_student:
        src.tokenizer.save_pretrained(directory)
        return {
            "kind": "tokenizer",
            "files": "tokenizer files (load with transformers.AutoTokenizer or"
            " tokenizers.Tokenizer.from_file('tokenizer.json'))",
            "max_length": src.max_length,
            "truncation": "longest first, to max_length tokens",
            "pair": task.pair,
        }
    cfg = src.student_cfg
    params: dict[str, Any] = {"kind": cfg.embedding, "pair": bool(cfg.pair)}
    if cfg.embedding == "char":
        params.update(
            alphabet=enc.CHAR_ALPHABET,
            pad_id=0,
            unknown_id=1,
            rule="lowercase, strip accents (NFKD, drop combining marks); alphabet[i] -> i + 2, other -> 1;"
            " empty text -> [1]",
        )
    elif cfg.embedding == "hash":
        params.update(
            vocab_size=encoder.vocab_size,
            num_buckets=encoder.num_buckets,
            num_hashes=encoder.num_hashes,
            word_pattern=enc._WORD_RE.pattern,
            rule="lowercase; words = regex findall (or [''] when none); per word and hash i: md5 of"
            " (word + str(i)) in UTF-8, first 8 bytes as little-endian int, mod (vocab_size *"
            " num_buckets), + 1",
        )
    else:
        model_file = Path(encoder.bpemb.model_file)
        shutil.copyfile(model_file, directory / "bpe.model")
        params.update(
            sentencepiece_model="bpe.model",
            vocab_size=encoder.vocab_size,
            unknown_id=int(encoder.bpemb.spm.unk_id()) + 1,
            rule="lowercase, every digit -> '0'; sentencepiece ids + 1 (0 is padding); no pieces -> [unk + 1]",
        )
    (directory / ENCODER_FILE).write_text(_encoder_source(params))
    return {**params, "script": ENCODER_FILE}


def _encoder_source(params: dict[str, Any]) -> str:
    """The standalone ``encode.py``: stdlib + numpy (+ sentencepiece for bpe); the encoding's constants inlined."""
    kind = params["kind"]
    head = f'''"""Text -> inputs of the exported featherweight student ({kind} embedding), without featherweight.

Written by `featherweight export`; needs only the Python standard library and numpy{" and sentencepiece" if kind == "bpe" else ""}.

    import encode
    inputs = encode.batch(["a text", "another one"])        # dict of numpy int64 arrays, the model's inputs
    inputs = encode.batch([("premise", "hypothesis")])      # sentence-pair students: one (a, b) tuple per example

`python encode.py` reads one text per line on stdin (tab-separated pairs for pair students) and prints the ids of
each as a JSON line.
"""

import hashlib
import json
import re
import sys
import unicodedata
from pathlib import Path

import numpy as np

KIND = {kind!r}
PAIR = {bool(params["pair"])!r}
'''
    if kind == "char":
        body = f'''
ALPHABET = {params["alphabet"]!r}
_INDEX = {{c: i + 2 for i, c in enumerate(ALPHABET)}}  # 0 padding, 1 unknown
WIDTH = 1


def _strip_accents(text):
    return "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))


def encode(text):
    """One text -> list of ids (length >= 1)."""
    ids = [_INDEX.get(c, 1) for c in _strip_accents(text.lower())]
    return ids or [1]
'''
    elif kind == "hash":
        body = f'''
VOCAB_SIZE = {params["vocab_size"]}
NUM_BUCKETS = {params["num_buckets"]}
NUM_HASHES = {params["num_hashes"]}
WORD_RE = re.compile({params["word_pattern"]!r}, re.UNICODE)
WIDTH = NUM_HASHES
_SPACE = VOCAB_SIZE * NUM_BUCKETS


def _md5_int(s):
    return int.from_bytes(hashlib.md5(s.encode("utf-8")).digest()[:8], "little")


def encode(text):
    """One text -> list of [id_1, ..., id_NUM_HASHES] per word (at least one word)."""
    words = WORD_RE.findall(text.lower()) or [""]
    return [[_md5_int(f"{{w}}{{i}}") % _SPACE + 1 for i in range(NUM_HASHES)] for w in words]
'''
    else:
        body = f'''
import sentencepiece as spm

_SP = spm.SentencePieceProcessor(model_file=str(Path(__file__).with_name({params["sentencepiece_model"]!r})))
UNKNOWN_ID = {params["unknown_id"]}
WIDTH = 1


def encode(text):
    """One text -> list of ids (sentencepiece id + 1; length >= 1)."""
    ids = _SP.EncodeAsIds(re.sub(r"\\d", "0", text.lower()))
    return [i + 1 for i in ids] or [UNKNOWN_ID]
'''
    tail = '''

def _pad(seqs):
    lengths = np.array([len(s) for s in seqs], dtype=np.int64)
    T = int(lengths.max()) if len(seqs) else 0
    shape = (len(seqs), T) if WIDTH == 1 else (len(seqs), T, WIDTH)
    ids = np.zeros(shape, dtype=np.int64)
    for r, s in enumerate(seqs):
        if len(s):
            ids[r, : len(s)] = np.asarray(s, dtype=np.int64)
    return ids, lengths


def batch(texts):
    """Texts (str, or (a, b) tuples for pair students) -> the model's inputs as a dict of int64 arrays."""
    if PAIR:
        a, b = _pad([encode(t[0]) for t in texts]), _pad([encode(t[1]) for t in texts])
        return {"ids_a": a[0], "lengths_a": a[1], "ids_b": b[0], "lengths_b": b[1]}
    texts = [t[0] if isinstance(t, (tuple, list)) else t for t in texts]
    ids, lengths = _pad([encode(t) for t in texts])
    return {"ids": ids, "lengths": lengths}


if __name__ == "__main__":
    for line in sys.stdin:
        line = line.rstrip("\\n")
        fields = line.split("\\t") if PAIR else [line]
        print(json.dumps([encode(f) for f in fields]))
'''
    return head + body + tail
