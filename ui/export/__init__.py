"""Figures for slides: a panel or the whole window as PNG, SVG, clipboard image or animated GIF.

The package holds no code of its own: import the module that does the job (`ui.export.render`, …).
"""
