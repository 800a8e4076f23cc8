"""Engine bridges: the ASE calculator and the LAMMPS pair-style plugin."""
