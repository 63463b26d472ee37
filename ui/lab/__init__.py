"""The Evaluation lab's tabs, one module each (``pages/evaluation_lab.py`` lays them out)."""
