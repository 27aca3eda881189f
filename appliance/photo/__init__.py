"""The photo booth's still path: matte, harmonise, place the star, compose a print-size photo (no pygame here)."""
