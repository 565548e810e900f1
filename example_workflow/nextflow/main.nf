#!/usr/bin/env nextflow
// A small pipeline to watch with panoptes:
//   TOWER_ACCESS_TOKEN=anything nextflow run main.nf -with-tower http://127.0.0.1:5000
// Samples fan out through two per-sample steps and gather into one report.
// `--fail_sample B` makes sample B fail in COUNT_WORDS (errorStrategy 'terminate').

nextflow.enable.dsl = 2

params.samples     = 'A,B,C,D'
params.fail_sample = ''
params.outdir      = 'results'

process MAKE_SAMPLE {
    tag "$sample"
    cpus 1
    memory '100 MB'

    input:
    val sample

    output:
    tuple val(sample), path("${sample}.txt")

    script:
    """
    for i in \$(seq 1 50); do echo "read \$i of sample ${sample}"; done > ${sample}.txt
    """
}

process COUNT_WORDS {
    tag "$sample"
    cpus 1
    memory '200 MB'
    time '5m'

    input:
    tuple val(sample), path(reads)

    output:
    tuple val(sample), path("${sample}.counts")

    script:
    """
    if [ "${sample}" = "${params.fail_sample}" ]; then
        echo "simulated failure for sample ${sample}" >&2
        exit 3
    fi
    sleep 1
    wc -w ${reads} > ${sample}.counts
    """
}

process UPPERCASE {
    tag "$sample"

    input:
    tuple val(sample), path(counts)

    output:
    path "${sample}.upper"

    script:
    """
    tr '[:lower:]' '[:upper:]' < ${counts} > ${sample}.upper
    """
}

process REPORT {
    publishDir params.outdir, mode: 'copy'

    input:
    path parts

    output:
    path 'report.txt'

    script:
    """
    cat ${parts} | sort > report.txt
    """
}

workflow {
    samples = Channel.of(params.samples.tokenize(','))
    MAKE_SAMPLE(samples) | COUNT_WORDS | UPPERCASE
    REPORT(UPPERCASE.out.collect())
}
