"""Export behind the gate: accepted-only training files, their manifest, and the proof checked again later."""
