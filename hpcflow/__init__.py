"""hpcflow: metric flows with neural networks on Calabi-Yau hypersurfaces (arXiv:2310.19870).

Layers (data flows one way, lower layers never import higher ones):
geometry -> cluster -> kernels -> flow -> parallel/checkpoint -> tune/submit -> analysis.
"""

__version__ = "0.1.0"
