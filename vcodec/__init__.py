"""vcodec: an overfitted neural intra codec (Cool-chic family) for YUV420 video.

Its packages form layers. A module imports from its own package and from lower layers only: never from a
higher layer, nor from another package of its own layer. tests/test_layering.py reads the list below and
checks every import of every module, those inside functions included:

    layer 8: __main__
    layer 7: cli
    layer 6: sequence eval
    layer 5: encoder
    layer 4: decoder
    layer 3: bitstream
    layer 2: model entropy io metrics samples help_text
    layer 1: config shapes
    layer 0: types format allocator thread_pool

`format` holds what the bitstream fixes (limits, value ranges, stored orders) and `shapes` the shapes an
architecture implies (latent grids, the ARM's neighbourhood and layers), so that the float model (`model`)
and the integer coders (`entropy`) agree without importing each other. `bitstream` packs and parses
headers (`vcodec info` takes the torch-free MAC count from `model.complexity`); the decoder joins
bitstream, entropy and model; the encoder drives them all. This package itself imports nothing, so any
module may read `vcodec.__version__`.
"""

__version__ = "0.1.0"
