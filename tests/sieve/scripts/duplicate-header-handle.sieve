require ["duplicate", "fileinto"];
if duplicate :header "subject" :handle "subj" :seconds 3600 { fileinto "dup-subject"; }
if duplicate :uniqueid "fixed" :last { fileinto "dup-fixed"; }
