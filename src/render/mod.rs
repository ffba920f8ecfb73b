//! PNG pictures, plots and the HTML report.
