if "simulate" in config:
    SIM = config["simulate"]
    SIM_UNLABELLED = list(SIM.get("unlabelled_lines") or [])  # tracks only: their loops are in no sheet
    SIM_LINES = list(SIM["cell_lines"]) + SIM_UNLABELLED

    rule simulate_demo:
        output:
            fasta=f"{SIM['outdir']}/genome.fa.gz",
            fai=f"{SIM['outdir']}/genome.fa.gz.fai",
            gzi=f"{SIM['outdir']}/genome.fa.gz.gzi",
            annotation=f"{SIM['outdir']}/annotation.gtf.gz",
            loops=expand("{d}/{cell}/loops.bedpe", d=SIM["outdir"], cell=SIM_LINES),
            tads=expand("{d}/{cell}/tads.bed.gz", d=SIM["outdir"], cell=SIM_LINES),
            tracks=[
                f"{SIM['outdir']}/{cell}/{mark}." + ("narrowPeak.gz" if mark in SIM["peak_marks"] else "bw")
                for cell in SIM_LINES
                for mark in SIM["marks"]
            ],
            truth=expand("{d}/{cell}/truth.tsv.gz", d=SIM["outdir"], cell=SIM_UNLABELLED),
            crispri=expand(
                "{d}/{cell}/crispri.tsv.gz",
                d=SIM["outdir"],
                cell=SIM_UNLABELLED if SIM.get("crispr_screen") else [],
            ),
        log:
            "logs/simulate/demo.log",
        benchmark:
            "logs/benchmarks/simulate/demo.tsv"
        conda:
            "../envs/simulate.yaml"
        params:
            simulate=SIM,
            library=library("simulate_demo.py"),
        script:
            "../scripts/simulate_demo.py"
