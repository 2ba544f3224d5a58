"""Dreamer (DreamerV3-style): backpropagation through imagined trajectories of a recurrent world model.

``math`` holds the pure tensor functions (symlog, two-hot, λ-returns, balanced KL with free bits,
unimix, straight-through samples, return normalization); ``sequence_buffer`` the replay of
contiguous per-env step windows that the recurrent model trains on.
"""
