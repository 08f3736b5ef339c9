if "simulate" in config:
    SIM = config["simulate"]

    rule simulate_demo:
        output:
            fasta=f"{SIM['outdir']}/genome.fa.gz",
            fai=f"{SIM['outdir']}/genome.fa.gz.fai",
            gzi=f"{SIM['outdir']}/genome.fa.gz.gzi",
            annotation=f"{SIM['outdir']}/annotation.gtf.gz",
            loops=expand("{d}/{cell}/loops.bedpe", d=SIM["outdir"], cell=SIM["cell_lines"]),
            tads=expand("{d}/{cell}/tads.bed.gz", d=SIM["outdir"], cell=SIM["cell_lines"]),
            tracks=[
                f"{SIM['outdir']}/{cell}/{mark}." + ("narrowPeak.gz" if mark in SIM["peak_marks"] else "bw")
                for cell in SIM["cell_lines"]
                for mark in SIM["marks"]
            ],
        log:
            "logs/simulate/demo.log",
        benchmark:
            "benchmarks/simulate/demo.tsv"
        conda:
            "../envs/simulate.yaml"
        params:
            simulate=SIM,
        script:
            "../scripts/simulate_demo.py"
