"""The Evaluation lab's tabs, one module each (``pages/evaluate.py`` lays them out)."""
