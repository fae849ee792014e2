"""The command line the two parity tools that compare against a recorded official run share."""
import argparse


def official_run_parser(doc: str) -> argparse.ArgumentParser:
    """``--official-out``, ``--inputs``, ``--json``, ``--dtype``, ``--tolerance``, ``--threads``."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("--official-out", required=True, help="what the harness around the official code recorded")
    parser.add_argument("--inputs", required=True, help="the weights and inputs the official run used")
    parser.add_argument("--json", help="also write the report here")
    parser.add_argument("--dtype", choices=["float32", "float64"],
                        help="run the pack in this dtype (default: the official run's)")
    parser.add_argument("--tolerance", type=float, default=1e-5,
                        help="largest latent difference, relative to the largest entry, of a float64 comparison")
    parser.add_argument("--threads", type=int, default=2)
    return parser
