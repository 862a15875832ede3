"""atheris (libFuzzer) over the same targets as test_fuzz.py; run in a subprocess:

    python -m tests.reliability.atheris_run {bundle|manifest|receipt} -runs=N

An exception other than the documented one, or a process over -rss_limit_mb,
ends the run with a non-zero exit and the input saved as an artifact.
"""

import sys
import tempfile

import atheris

with atheris.instrument_imports():
    from tests.reliability import fuzz_targets as t


def main() -> None:
    target = sys.argv.pop(1)
    folder = tempfile.mkdtemp()
    fn = {
        "bundle": lambda b: t.read_bundle(b, folder),
        "manifest": t.parse_manifest,
        "receipt": t.parse_receipt,
    }[target]
    seed_input = {"bundle": t.sample_bundle, "manifest": lambda: t.manifest_bytes(t.sample_bundle()),
                  "receipt": t.sample_receipt}[target]()
    corpus = tempfile.mkdtemp()
    with open(f"{corpus}/seed", "wb") as f:
        f.write(seed_input)
    atheris.Setup(sys.argv + [corpus], fn)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
