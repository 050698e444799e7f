"""Compatibility front ends: ``import graphc.compat.v1 as tf`` runs TensorFlow 1.x
graph-mode scripts on graphc with only the import line changed (SPEC §9)."""
