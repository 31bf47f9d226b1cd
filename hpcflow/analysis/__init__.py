"""Offline analysis: the paper's figures and tables from run directories, HDF5 files and Optuna studies.

Reads files only (never the pipeline's modules). One module per figure or table (fig2, fig3_noise,
fig3_scaling, fig4, table1, histories, optuna_view), each with load(...) and plot(...) / markdown(...);
`products.PRODUCTS` maps the script names of analysis/ to them. Figures use matplotlib's Agg canvas.
"""
