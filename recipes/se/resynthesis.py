"""Derive an SE bundle that enhances with another resynthesis (`SEConfig.resynthesis`, `mask_exponent`): the same
weights, a new config and version. How the decoder's magnitude becomes a waveform is a property of the released model
(it owns its post-processing), so a change of it is a new bundle version, not a call-time switch.

    python -m recipes.se.resynthesis pretrained/vqscore-se-cleanspeech-1.0.0.json out/se-mask --resynthesis mask \\
        --mask-exponent 0.75 --version 1.1.0
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from vqscore.bundle import load_bundle, read_info
from vqscore.models import config_from_dict

from ..common.export import write_card


def derive(source: str, directory: str, resynthesis: str, mask_exponent: float, version: str, json_name: str | None = None) -> Path:
    """Write the derived bundle JSON (and its card) into `directory`; the weights file is the source's, copied
    there only if it is not there already (so a derived bundle in pretrained/ ships no second copy)."""
    info = read_info(source)
    if info.kind != "se":
        raise ValueError(f"{source}: an SE bundle is needed, not a {info.kind} one")
    data = json.loads(Path(info.path).read_text())
    data["model"] = {**data["model"], "resynthesis": resynthesis, "mask_exponent": mask_exponent}
    config_from_dict(data["model"])  # refuses what the library would refuse at load time
    data["version"] = version
    note = f"same weights, resynthesis {resynthesis}" + (f", mask exponent {mask_exponent:g}" if resynthesis == "mask" else "")
    data["training"] = {**data.get("training", {}), "derived_from": f"{info.name}@{info.version}: {note}"}
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    if not (directory / info.weights).is_file():
        shutil.copy2(info.weights_path, directory / info.weights)
    json_path = directory / (json_name or f"{info.name}.json")
    json_path.write_text(json.dumps(data, indent=2) + "\n")
    load_bundle(json_path)  # the sha256 and the config check out
    write_card(json_path, info.name, version, data["training"])
    return json_path


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", help="an SE bundle JSON")
    parser.add_argument("directory", help="where the derived bundle is written")
    parser.add_argument("--resynthesis", choices=("decoder", "mask"), required=True)
    parser.add_argument("--mask-exponent", type=float, default=1.0)
    parser.add_argument("--version", required=True)
    parser.add_argument("--json-name", help="bundle JSON file name (default NAME.json)")
    args = parser.parse_args(argv)
    print(derive(args.source, args.directory, args.resynthesis, args.mask_exponent, args.version, args.json_name))


if __name__ == "__main__":
    main()
