"""Encoders: MF-BPR and LightGCN trained with BPR (torch)."""
