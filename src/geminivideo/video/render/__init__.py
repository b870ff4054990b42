"""Rendering ads: the render pipeline, its filter graph, fonts, burned-in SRT and GPU encoding."""
